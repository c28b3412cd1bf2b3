*** Settings ***
Documentation       Bot que toma cada ítem de la cola y no hace nada con él.

Library             RPA.Robocorp.WorkItems


*** Tasks ***
Tomar Cada Item Sin Hacer Nada
    [Documentation]    Vacía la cola sin trabajo por ítem.
    For Each Input Work Item    No Operation
