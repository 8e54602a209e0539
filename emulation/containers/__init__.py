"""The algorithm containers, run as plain Python child processes instead of Docker images.

Each follows the SageMaker container contract: training reads ``<prefix>/input`` and writes
``<prefix>/model`` (``prefix`` plays ``/opt/ml``), serving answers ``GET /ping`` and
``POST /invocations``. ``images`` maps an image URI to the implementation that stands in for it.
"""

#: The environment variable through which a runner that runs a job's hosts side by side tells each
#: container where the others are (JSON: host name -> address), where DNS would on SageMaker. Here,
#: in the container code, because the images `sagelocal build-image` makes carry only this package.
HOST_ADDRESSES_VARIABLE = "SAGELOCAL_HOST_ADDRESSES"
