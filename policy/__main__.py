"""gestic's policy pack: the rules of `gestic.production.rules` as Pulumi policies.

Run by the institution's CI with `pulumi preview --stack production --policy-pack policy/`
(from `stacks/production`, with gestic and pulumi-policy installed in the Python the engine
uses). Locally, `gestic policy check --stack production` applies the same rules under mocks.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from gestic.production.pack import PACK_NAME, policies

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policies(),
)
