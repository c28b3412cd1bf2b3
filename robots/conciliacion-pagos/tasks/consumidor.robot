*** Settings ***
Documentation       Consumidor: concilia cada pago contra la cartera de créditos.
...                 Un pago mal formado o sin crédito que lo respalde es una excepción de negocio
...                 (BUSINESS, con código); una cartera que no responde es una falla técnica
...                 (APPLICATION) que el orquestador reintenta.

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
    EXCEPT    AS    ${error}
        Release Input Work Item    FAILED    exception_type=APPLICATION
        ...    code=CARTERA_NO_DISPONIBLE    message=${error}
        RETURN
    END
    Create Output Work Item    ${resultado}    save=${TRUE}
    IF    $resultado['estado'] == 'conciliado'
        Release Input Work Item    DONE
    ELSE
        Release Input Work Item    FAILED    exception_type=BUSINESS
        ...    code=${resultado}[codigo]    message=${resultado}[mensaje]
    END
