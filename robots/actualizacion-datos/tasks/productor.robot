*** Settings ***
Documentation       Productor: un ítem de trabajo por cada fila de la planilla de actualizaciones.

Library             RPA.Robocorp.WorkItems
Library             Actualizacion.py


*** Tasks ***
Crear Un Item Por Cada Registro De La Planilla
    [Documentation]    Lee cada planilla recibida y encola sus registros.
    For Each Input Work Item    Encolar Registros De La Planilla


*** Keywords ***
Encolar Registros De La Planilla
    [Documentation]    Descarga la planilla del ítem y crea un ítem de salida por fila.
    ${nombre}=    Get Work Item Variable    archivo
    ${ruta}=    Get Work Item File    ${nombre}
    @{registros}=    Leer Planilla De Actualizaciones    ${ruta}
    FOR    ${registro}    IN    @{registros}
        Create Output Work Item    ${registro}    save=${TRUE}
    END
