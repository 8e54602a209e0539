"""Script mode: the framework containers (XGBoost, Scikit-learn, PyTorch) running users' code.

On AWS these images hold AWS's training and inference toolkits, which run ``train.py`` under the
container contract and serve ``inference.py``'s handler functions. Here the same contract is
given to the user's code in a plain child process of this machine's Python (or of an isolated
environment with the job's ``requirements.txt``, see ``emulation.containers.environments``):

- ``training``: the SM_* environment and ``--name value`` arguments the training toolkit gives
  a script, and the FailureReason its errors become;
- ``process``: the child process that runs a user's command, its output line by line;
- ``serving`` and ``handlers``: the inference toolkit's handler chain (model_fn, input_fn,
  predict_fn, output_fn) with each framework's defaults, behind /ping and /invocations.
"""
