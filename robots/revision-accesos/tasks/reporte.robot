*** Settings ***
Documentation       Reporte: escribe la propuesta de retiro de accesos (YAML para revisión)
...                 y la tabla de todas las decisiones (CSV).

Library             RPA.Robocorp.WorkItems
Library             RPA.Tables
Library             RevisionAccesos.py


*** Variables ***
${TICKET}       REV-ACCESOS


*** Tasks ***
Escribir La Propuesta De Retiro De Accesos
    [Documentation]    Reúne las decisiones en cola y escribe la propuesta y la tabla.
    @{decisiones}=    For Each Input Work Item    Get Work Item Variables
    IF    not $decisiones
        Log    No hay decisiones que reportar
    ELSE
        ${tabla}=    Create Table    ${decisiones}
        Write Table To Csv    ${tabla}    ${OUTPUT_DIR}${/}revision-accesos.csv
        ${revocar}=    Propuesta De Retiro    ${decisiones}    ${TICKET}
        ...    ${OUTPUT_DIR}${/}accesos-a-revocar.yml
        Log    ${revocar} cuentas propuestas para retiro
    END
