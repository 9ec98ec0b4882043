"""The layer every other uses: errors and how a command ends, atomic files, the results-folder layout, claims and locks, worker processes, numbers as text."""
