"""The dataset trigger: S3 manifest notifications (via SQS or EventBridge) -> validate -> queue a RetrainJob.

Modules: `events` (parser models for the message bodies), `s3_source` (the dataset on S3 as a
`DatasetSource`, ranged GETs only), `service` (one manifest -> `gpu_worker.intake.accept_dataset`),
`environment` (adapters from the function's environment variables), `app` (the Powertools handler).
"""
