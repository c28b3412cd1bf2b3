#!/usr/bin/env bash
# Build the pinned Pulumi CLI from the Go module proxy into a project-local tools dir.
#
# `go install github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@vX` is refused because pulumi's
# go.mod carries `replace` directives, so we build through a small wrapper module that
# requires pkg/v3 and sdk/v3 at one release and copies pkg's non-path replace lines.
# The Python language host is not served by the module proxy here: gestic drives programs
# through the Automation API (inline programs, the SDK serves the language runtime) and
# tools/bin carries small launchers for Python dynamic providers.
set -euo pipefail

version="${PULUMI_ENGINE_VERSION:?set PULUMI_ENGINE_VERSION}"
dest="${1:?usage: build-pulumi-engine.sh DEST_BIN_DIR}"

if ! command -v go >/dev/null 2>&1; then
  echo "gestic: Go is required to build the Pulumi engine (pulumi ${version}) and was not found on PATH." >&2
  echo "gestic: install Go (https://go.dev/doc/install or Debian's golang package) or put a pulumi ${version} binary on PATH." >&2
  exit 3
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "gestic: building Pulumi engine v${version} with $(go version | cut -d' ' -f3) (first build takes several minutes; Go caches make later ones quick)"
go mod init gestic.local/pulumi-engine >/dev/null 2>&1
go mod download -json "github.com/pulumi/pulumi/pkg/v3@v${version}" > pkg.json
gomod="$(python3 -c 'import json,sys; print(json.load(open("pkg.json"))["GoMod"])')"
{
  echo "require ("
  echo "  github.com/pulumi/pulumi/pkg/v3 v${version}"
  echo "  github.com/pulumi/pulumi/sdk/v3 v${version}"
  echo ")"
  # copy replace lines that point at another module version (not at a path in pulumi's tree)
  grep -E '^replace .* => [^./][^ ]* v[0-9]' "$gomod" || true
} >> go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
GO
go mod tidy >/dev/null
mkdir -p "$dest"
ldflags="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${version}"
go build -trimpath -ldflags "$ldflags" -o "$dest/pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
mv -f "$dest/pulumi.tmp" "$dest/pulumi"
"$dest/pulumi" version
