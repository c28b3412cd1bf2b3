*** Settings ***
Documentation       Consumidor: concilia cada pago contra la cartera de créditos.
...                 Un pago mal formado o sin crédito que lo respalde es una excepción de negocio
...                 (BUSINESS, con código); una cartera que no responde es una falla técnica
...                 (APPLICATION, CARTERA_NO_DISPONIBLE) que el orquestador reintenta; cualquier
...                 otro error es APPLICATION ERROR_INESPERADO.

Library             RPA.Robocorp.WorkItems
Library             Conciliacion.py    ${CARTERA_URL}    ${CARTERA_CSV}


*** Variables ***
${CARTERA_URL}      ${EMPTY}
${CARTERA_CSV}      ${CURDIR}${/}..${/}devdata${/}cartera.csv


*** Tasks ***
Conciliar Cada Pago Contra La Cartera
    [Documentation]    Toma los pagos de la cola uno a uno hasta vaciarla.
    For Each Input Work Item    Conciliar Un Pago


*** Keywords ***
Conciliar Un Pago
    [Documentation]    Concilia el pago actual y libera el ítem como hecho o como excepción.
    ${pago}=    Get Work Item Variables
    TRY
        ${resultado}=    Conciliar Pago Contra Cartera    ${pago}
    EXCEPT    CarteraNoDisponible: *    type=GLOB    AS    ${error}
        Release Input Work Item    FAILED    exception_type=APPLICATION
        ...    code=CARTERA_NO_DISPONIBLE    message=${error}
        RETURN
    EXCEPT    AS    ${error}
        # cualquier otra falla es un error del robot, no de la cartera: se reintenta con su
        # propio código para que la mesa de servicio no lo confunda con una caída
        Release Input Work Item    FAILED    exception_type=APPLICATION
        ...    code=ERROR_INESPERADO    message=${error}
        RETURN
    END
    Create Output Work Item    ${resultado}    save=${TRUE}
    IF    $resultado['estado'] == 'conciliado'
        Release Input Work Item    DONE
    ELSE
        Release Input Work Item    FAILED    exception_type=BUSINESS
        ...    code=${resultado}[codigo]    message=${resultado}[mensaje]
    END
