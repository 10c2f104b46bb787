"""Reports: quality-control pictures of results (matplotlib, imported only when used)."""

from graftimg.report.qc import qc_figure, save_qc_png

__all__ = ["qc_figure", "save_qc_png"]
