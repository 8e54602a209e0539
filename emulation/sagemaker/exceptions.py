"""SageMaker's errors, worded as the service words them (shared/spec/xgboost-algorithm.md)."""

from emulation.protocol import AwsError, ValidationError


class ResourceInUse(AwsError):
    def __init__(self, message: str):
        super().__init__("ResourceInUse", message)


class ResourceNotFound(AwsError):
    def __init__(self, message: str):
        super().__init__("ResourceNotFound", message)


class ResourceLimitExceeded(AwsError):
    def __init__(self, message: str):
        super().__init__("ResourceLimitExceeded", message)


def already_exists(kind: str, arn: str) -> ValidationError:
    """Models, endpoint configurations and endpoints: the SDK matches this wording."""
    return ValidationError(f'Cannot create already existing {kind} "{arn}".')


def could_not_find(kind: str, arn: str) -> ValidationError:
    return ValidationError(f'Could not find {kind} "{arn}".')


def no_s3_objects(uri: str, region: str, role_arn: str) -> ValidationError:
    bucket = uri[5:].split("/", 1)[0]
    return ValidationError(
        f'No S3 objects found under S3 URL "{uri}" given in input data source. Please ensure that the bucket '
        f"exists in the selected region ({region}), that objects exist under that S3 prefix, and that the role "
        f'"{role_arn}" has "s3:ListBucket" permissions on bucket "{bucket}".'
    )
