"""``critic score``: score a corpus, exactly once, in bounded memory.

Inputs and the output folder are local paths or storage URIs (``s3://...``; see
:mod:`critic.storage`). The inputs, one after the other, are cut into shards of
``shard_rows`` rows (shard k = rows k*S .. (k+1)*S-1 across all inputs), so a corpus of many
small files gives few shards of full size, and a shard may span several inputs (its
segments: which rows of which input; the manifest lists them). A shard's output becomes
visible only complete, under its final name: on a local disk it is written to a temporary
name, fsynced and renamed; on an object store it is uploaded in one piece, and the store
publishes it when the upload completes. A manifest written before the first shard pins the
model, the inputs (sha256, or on S3 the store's ETag) and the options; re-running the same
command skips the shards that exist, so after a crash (even ``kill -9``) the output holds
exactly the rows of an uninterrupted run. A changed model, input or option is refused rather
than mixed into old output. At the end the rows committed are counted and compared with the
rows the inputs hold: any difference is an error.

The package, bottom up: ``options`` (what a job is asked and tells), ``layout`` (the inputs
cut into shards), ``manifest`` (the job's identity on its output), ``shards`` (one shard
read, scored and written), ``job`` (a job's start and end, both engines), and the engines:
``local`` (this process) and ``ray_engine`` (a pool of Ray actors).
"""
