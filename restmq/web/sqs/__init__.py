"""Amazon SQS on RestMQ: the wire protocols (AWS JSON 1.0 and the query protocol) and the SQS operations, over
the same QueueService the REST routes use. docs/sqs.md describes it for users."""
