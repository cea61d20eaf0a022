"""DetectNet_v2: channel plan, model, target encoding, losses, post-processing, metrics.

Never imports boto3, docker or queue code.
"""
