"""The algorithm containers, run as plain Python child processes instead of Docker images.

Each follows the SageMaker container contract: training reads ``<prefix>/input`` and writes
``<prefix>/model`` (``prefix`` plays ``/opt/ml``), serving answers ``GET /ping`` and
``POST /invocations``. ``images`` maps an image URI to the implementation that stands in for it.
"""
