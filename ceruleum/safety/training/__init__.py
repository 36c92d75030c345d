"""Training the content classifier from the labelled data in data/safety/ (not used at run time)."""
