"""SageMaker, our own: the control plane (backend + provider), the jobs and endpoints that really
run (training, transform, hosting) and the runtime's InvokeEndpoint."""
