"""Where the service's files are kept: the STORAGES entries the settings choose from."""
from __future__ import annotations


def s3_storage(*, bucket: str, endpoint_url: str | None = None, region: str | None = None,
               access_key: str | None = None, secret_key: str | None = None, prefix: str = "",
               addressing_style: str = "virtual") -> dict:
    """Return the STORAGES entry of an S3-compatible bucket (django-storages), private and never overwriting."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket, "endpoint_url": endpoint_url, "region_name": region,
            "access_key": access_key, "secret_key": secret_key, "location": prefix,
            "addressing_style": addressing_style,
            # Files are read by the workers only, never served from the bucket: private, no public ACL.
            "default_acl": None, "querystring_auth": True,
            # A name taken gets a new one, as on the media root: a run reads on in the upload it began with.
            "file_overwrite": False,
            # A file read is downloaded whole into a temporary file: held in memory up to this size only.
            "max_memory_size": 16 * 2**20,
        },
    }
