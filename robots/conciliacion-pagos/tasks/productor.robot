*** Settings ***
Documentation       Productor: divide el archivo de pagos del banco en un ítem de trabajo por pago.
...                 Entrada: un ítem con el archivo adjunto (CSV o Excel) y su nombre en `archivo`.
...                 Salida: un ítem por fila, hacia la cola de pagos que concilia el consumidor.

Library             RPA.Robocorp.WorkItems
Library             Conciliacion.py


*** Tasks ***
Crear Un Item Por Cada Pago Del Archivo
    [Documentation]    Lee cada archivo de pagos recibido y crea un ítem por pago.
    For Each Input Work Item    Crear Items De Los Pagos Del Archivo


*** Keywords ***
Crear Items De Los Pagos Del Archivo
    [Documentation]    Descarga el archivo del ítem de entrada y crea un ítem de salida por fila.
    ${nombre}=    Get Work Item Variable    archivo
    ${ruta}=    Get Work Item File    ${nombre}
    @{pagos}=    Leer Archivo De Pagos    ${ruta}
    FOR    ${pago}    IN    @{pagos}
        Create Output Work Item    ${pago}    save=${TRUE}
    END
    Log    ${nombre}: ${{len($pagos)}} pagos en cola
