"""What the runs show: tables, tested claims, mechanisms and figures from a results folder."""
