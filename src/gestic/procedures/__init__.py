"""The process's procedures, one package each: collect, analyse, report."""
