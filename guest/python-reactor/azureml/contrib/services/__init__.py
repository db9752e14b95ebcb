"""``azureml.contrib.services``: ``@rawhttp``, ``AMLRequest`` and ``AMLResponse``
as Azure ML's inference server gives them to a scoring script."""
