*** Settings ***
Documentation       Bot de prueba: procesa cada ítem, con pausas, fallas técnicas y de negocio.

Library             RPA.Robocorp.WorkItems
Library             Prueba.py    ${MARCAS}    ${PAUSA}


*** Variables ***
${MARCAS}       ${OUTPUT_DIR}
${PAUSA}        0


*** Tasks ***
Procesar Cada Item De La Cola
    [Documentation]    Procesa los ítems de la cola hasta vaciarla.
    For Each Input Work Item    Procesar Un Item


*** Keywords ***
Procesar Un Item
    [Documentation]    Procesa el ítem actual y lo libera según el resultado.
    ${payload}=    Get Work Item Payload
    TRY
        ${resultado}=    Procesar Item De Prueba    ${payload}
    EXCEPT    AS    ${error}
        Release Input Work Item    FAILED    exception_type=APPLICATION
        ...    code=SERVICIO_CAIDO    message=${error}
        RETURN
    END
    IF    $resultado['estado'] == 'hecho'
        Release Input Work Item    DONE
    ELSE
        Release Input Work Item    FAILED    exception_type=BUSINESS
        ...    code=${resultado}[codigo]    message=${resultado}[mensaje]
    END
