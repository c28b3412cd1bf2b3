"""Keywords of the test bot: markers on disk show what was started and completed, and by whom."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from robot.api.deco import keyword, library


@library(scope="GLOBAL", auto_keywords=False)
class Prueba:
    def __init__(self, marcas: str, pausa: str = "0") -> None:
        self.marcas = Path(marcas)
        self.marcas.mkdir(parents=True, exist_ok=True)
        self.pausa = float(pausa)

    @keyword("Procesar Item De Prueba")
    def procesar(self, payload: Any) -> dict[str, str]:
        """Payload {"n": int}: sleeps, then appends n to hechos.txt.

        No integer n: a BUSINESS result with code PAYLOAD_INVALIDO. {"falla_tecnica": true}:
        raises (an APPLICATION failure, retried).
        """
        n = payload.get("n") if isinstance(payload, dict) else None
        if not isinstance(n, int) or isinstance(n, bool):
            return {
                "estado": "rechazado",
                "codigo": "PAYLOAD_INVALIDO",
                "mensaje": f"el ítem no trae un entero 'n': {payload!r}",
            }
        (self.marcas / f"inicio-{n}-{os.getpid()}").touch()
        time.sleep(self.pausa)
        if payload.get("falla_tecnica"):
            raise RuntimeError(f"servicio de prueba no disponible (ítem {n})")
        with (self.marcas / "hechos.txt").open("a", encoding="utf-8") as out:
            out.write(f"{n}\n")
        return {"estado": "hecho", "codigo": "", "mensaje": ""}
