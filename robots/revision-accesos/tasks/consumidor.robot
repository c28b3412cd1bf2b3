*** Settings ***
Documentation       Consumidor: decide para cada cuenta si se conserva o se propone revocar.
...                 Un registro sin nombre de cuenta es una excepción de negocio con código.

Library             RPA.Robocorp.WorkItems
Library             RevisionAccesos.py


*** Tasks ***
Decidir Cada Acceso
    [Documentation]    Toma las cuentas de la cola una a una hasta vaciarla.
    For Each Input Work Item    Decidir Un Acceso


*** Keywords ***
Decidir Un Acceso
    [Documentation]    Decide sobre la cuenta actual y libera el ítem.
    ${cuenta}=    Get Work Item Variables
    ${decision}=    Decidir Acceso    ${cuenta}
    Create Output Work Item    ${decision}    save=${TRUE}
    IF    $decision['decision'] == 'rechazado'
        Release Input Work Item    FAILED    exception_type=BUSINESS
        ...    code=${decision}[codigo]    message=${decision}[motivo]
    ELSE
        Release Input Work Item    DONE
    END
