"""The serverless pipeline: services behind small interfaces, and their AWS adapters.

Needs the ``aws`` extra (boto3, pynamodb, aws-lambda-powertools); the engine does not.
"""
