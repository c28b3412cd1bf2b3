*** Settings ***
Documentation       Consumidor: escribe los datos de cada beneficiario en el formulario del portal
...                 con un navegador real (Chromium sin interfaz). Registro inválido, beneficiario
...                 inexistente o datos que el portal rechaza: excepción de negocio (BUSINESS).
...                 Portal que no responde: falla técnica (APPLICATION), que se reintenta.

Library             RPA.Robocorp.WorkItems
Library             RPA.Browser.Selenium    timeout=15s    implicit_wait=0s
Library             Actualizacion.py

Suite Setup         Abrir El Navegador
Suite Teardown      Close All Browsers


*** Variables ***
${PORTAL_URL}           ${EMPTY}
${ESPERA_DEL_PORTAL}    15s


*** Tasks ***
Actualizar Cada Beneficiario En El Portal
    [Documentation]    Toma los registros de la cola uno a uno hasta vaciarla.
    For Each Input Work Item    Actualizar Un Beneficiario


*** Keywords ***
Abrir El Navegador
    [Documentation]    Chromium de Debian con su chromedriver: nada se descarga.
    Should Not Be Empty    ${PORTAL_URL}
    ...    msg=PORTAL_URL no está definido: lo da el inventario del entorno (gestic_rpa.variables) o --var
    ${opciones}=    Opciones De Chromium
    ${servicio}=    Servicio De Chromedriver
    Open Browser    about:blank    browser=chrome    options=${opciones}    service=${servicio}
    # un portal que acepta la conexión y no responde no retiene al robot 5 minutos
    Set Selenium Page Load Timeout    ${ESPERA_DEL_PORTAL}

Actualizar Un Beneficiario
    [Documentation]    Abre el formulario del beneficiario, lo llena, lo envía y confirma.
    ${registro}=    Get Work Item Variables
    ${problema}=    Problema Del Registro    ${registro}
    IF    $problema
        Release Input Work Item    FAILED    exception_type=BUSINESS
        ...    code=REGISTRO_INVALIDO    message=${problema}
        RETURN
    END
    TRY
        Go To    ${PORTAL_URL}/beneficiarios/${registro}[documento]/editar
    EXCEPT    TimeoutException: *    *net::ERR_*    type=GLOB    AS    ${error}
        Release Input Work Item    FAILED    exception_type=APPLICATION
        ...    code=PORTAL_NO_DISPONIBLE    message=${PORTAL_URL}: ${error}
        RETURN
    EXCEPT    AS    ${error}
        # el navegador mismo falló (se cerró, perdió la sesión): no es una caída del portal
        Release Input Work Item    FAILED    exception_type=APPLICATION
        ...    code=NAVEGADOR_NO_DISPONIBLE    message=${error}
        RETURN
    END
    ${titulo}=    Get Title
    ${fuente}=    Get Source
    ${pagina}=    Clasificar Pagina    ${titulo}    ${fuente}
    IF    $pagina == 'caido'
        Release Input Work Item    FAILED    exception_type=APPLICATION
        ...    code=PORTAL_NO_DISPONIBLE    message=el portal no respondió en ${PORTAL_URL}
        RETURN
    ELSE IF    $pagina == 'no_encontrado'
        Release Input Work Item    FAILED    exception_type=BUSINESS
        ...    code=BENEFICIARIO_NO_ENCONTRADO
        ...    message=el portal no tiene el documento ${registro}[documento]
        RETURN
    END
    Llenar Y Enviar El Formulario    ${registro}

Llenar Y Enviar El Formulario
    [Documentation]    Escribe cada campo que trae el registro (los demás conservan lo que el
    ...    portal ya tiene), guarda y lee la respuesta: el aviso de confirmación o los errores
    ...    de validación que el portal muestra junto a cada campo.
    [Arguments]    ${registro}
    ${campos}=    Campos A Actualizar    ${registro}
    FOR    ${campo}    ${valor}    IN    &{campos}
        Input Text    id:${campo}    ${valor}    clear=${TRUE}
    END
    Click Button    id:guardar
    ${respondio}=    Run Keyword And Return Status
    ...    Wait Until Page Contains Element    css:#aviso, #errores    ${ESPERA_DEL_PORTAL}
    IF    not ${respondio}
        ${titulo}=    Get Title
        Release Input Work Item    FAILED    exception_type=APPLICATION
        ...    code=PORTAL_SIN_CONFIRMACION
        ...    message=el portal no confirmó la actualización (página: ${titulo})
        RETURN
    END
    ${confirmado}=    Get Element Count    id:aviso
    IF    ${confirmado}
        ${aviso}=    Get Text    id:aviso
        Create Output Work Item    ${{ {**$campos, "documento": $registro["documento"], "aviso": $aviso} }}
        ...    save=${TRUE}
        Release Input Work Item    DONE
        RETURN
    END
    @{errores}=    Get WebElements    css:p.error[id^="error-"]
    IF    $errores
        ${rechazos}=    Rechazos Del Formulario    ${errores}
        Release Input Work Item    FAILED    exception_type=BUSINESS
        ...    code=DATOS_RECHAZADOS    message=${rechazos}
    ELSE
        ${aviso}=    Get Text    id:errores
        Release Input Work Item    FAILED    exception_type=APPLICATION
        ...    code=PORTAL_SIN_CONFIRMACION    message=el portal no guardó los datos: ${aviso}
    END
