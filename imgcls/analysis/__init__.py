"""Reading run folders: model summaries, run comparisons and plots. Nothing here trains."""
