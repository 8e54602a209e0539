"""Script mode: the framework containers (XGBoost, Scikit-learn, PyTorch) running users' code.

On AWS these images hold AWS's training and inference toolkits, which run ``train.py`` under the
container contract and serve ``inference.py``'s handler functions. Here the same contract is
given to the user's code in a child process of this machine's Python (or of an isolated
environment with the job's ``requirements.txt``, see ``emulation.containers.environments``):

- ``runtime``: what the process runner runs for a framework image, per mode (train, serve,
  process), in the bubblewrap sandbox where there is one;
- ``training``: the SM_* environment and ``--name value`` arguments the training toolkit gives
  a script, and the FailureReason its errors become;
- ``process``: a container as a setup step and a child process, behind the runners' interface;
- ``serving`` and ``handlers``: the inference toolkit's handler chain (model_fn, input_fn,
  predict_fn, output_fn) with each framework's defaults, behind /ping and /invocations.
"""
