"""AWS Lambda functions of peoplenet-retrain (torch- and docker-free; built by `make build-<Function>`)."""
