"""Static tests of the Kubernetes deployment (helm-values/, include/spark/, images/spark/, the deployment guide).

No cluster, helm binary or Docker is available to the test suite: where a test stands in for one of them
(the Kubernetes API's validation, helm's value merging, the image build) it says so in its docstring.
"""
