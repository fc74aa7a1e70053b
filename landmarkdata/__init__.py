"""The data layer: landmark dataset loaders, evaluation protocols (as data on each dataset) and
metrics. Imports only ``sdk``; converters, calibration, training and benchmarks all read it."""
