"""Run reports: summary.md, CSV/JSON tables and PNG plots (matplotlib Agg)."""
from .plots import plot_accuracy_vs_sparsity, plot_layer_sparsity
from .summary import headline, write_report
from .tables import COLUMNS, format_value, rows_to_csv, rows_to_json, rows_to_markdown

__all__ = ["write_report", "headline", "plot_accuracy_vs_sparsity", "plot_layer_sparsity",
           "rows_to_markdown", "rows_to_csv", "rows_to_json", "format_value", "COLUMNS"]
