*** Settings ***
Documentation       Productor: cruza el reporte de accesos de los hosts con la planta activa
...                 y crea un ítem por cada cuenta humana de cada host.

Library             RPA.Robocorp.WorkItems
Library             RevisionAccesos.py


*** Tasks ***
Crear Un Item Por Cada Cuenta De Cada Host
    [Documentation]    Lee el reporte de accesos y la planta, y encola las cuentas a revisar.
    For Each Input Work Item    Encolar Cuentas Del Reporte


*** Keywords ***
Encolar Cuentas Del Reporte
    [Documentation]    Descarga los insumos del ítem y crea un ítem de salida por cuenta.
    ${reporte}=    Get Work Item Variable    reporte_accesos
    ${planta}=    Get Work Item Variable    planta
    ${servicio}=    Get Work Item Variable    cuentas_de_servicio    default=${{["gestic"]}}
    ${ruta_reporte}=    Get Work Item File    ${reporte}
    ${ruta_planta}=    Get Work Item File    ${planta}
    ${personas}=    Leer Planta Activa    ${ruta_planta}
    @{cuentas}=    Cuentas A Revisar    ${ruta_reporte}    ${personas}    ${servicio}
    FOR    ${cuenta}    IN    @{cuentas}
        Create Output Work Item    ${cuenta}    save=${TRUE}
    END
