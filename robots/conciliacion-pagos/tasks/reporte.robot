*** Settings ***
Documentation       Reporte: escribe el libro de conciliación (Excel) y el resumen en PDF
...                 con los resultados de los pagos conciliados y rechazados.

Library             RPA.Robocorp.WorkItems
Library             RPA.Excel.Files
Library             RPA.PDF
Library             Conciliacion.py


*** Tasks ***
Escribir El Libro De Conciliacion Y El Resumen
    [Documentation]    Reúne los resultados en cola y escribe el libro y el resumen.
    @{resultados}=    For Each Input Work Item    Get Work Item Variables
    IF    not $resultados
        Log    No hay resultados que reportar
    ELSE
        Escribir Libro De Conciliacion    ${resultados}
        ${resumen}=    Resumen En Html    ${resultados}
        Html To Pdf    ${resumen}    ${OUTPUT_DIR}${/}resumen-conciliacion.pdf
    END


*** Keywords ***
Escribir Libro De Conciliacion
    [Documentation]    Una hoja con los pagos conciliados y otra con los rechazados.
    [Arguments]    ${resultados}
    ${conciliados}    ${rechazados}=    Separar Resultados    ${resultados}
    Create Workbook    ${OUTPUT_DIR}${/}conciliacion.xlsx    fmt=xlsx    sheet_name=Conciliados
    IF    $conciliados
        Append Rows To Worksheet    ${conciliados}    header=${TRUE}
    END
    Create Worksheet    Rechazados
    IF    $rechazados
        Append Rows To Worksheet    ${rechazados}    name=Rechazados    header=${TRUE}
    END
    Save Workbook
