"""The bottom layer: specs and their parser, tasks and datasets (the subsets), Fourier analysis on
Z_p, metrics (the margin, the loss kinds), the document model and process-scoped runtime settings.
Nothing here knows about models."""
