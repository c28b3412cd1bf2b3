"""gestic: infrastructure-as-code and RPA orchestration for ICETEX's IT directorate."""

__version__ = "0.1.0"
