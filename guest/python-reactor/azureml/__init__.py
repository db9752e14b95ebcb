"""The parts of Azure ML's SDK a scoring script imports, for the sandbox."""
