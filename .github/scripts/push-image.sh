#!/usr/bin/env bash
# Pushes the image built once by deploy.yml's build job to one stack's ECR repository.
# Inputs (environment): ARCHIVE (docker save tarball), LOCAL_IMAGE (its tag), REPOSITORY_URL
# (<account>.dkr.ecr.<region>.amazonaws.com/<name>), IMAGE_TAG (the commit SHA).
# ECR tags are immutable (docs/deploying.md#running-stacks), so a re-run finds the tag present and skips.
set -euo pipefail

: "${ARCHIVE:?}" "${LOCAL_IMAGE:?}" "${REPOSITORY_URL:?}" "${IMAGE_TAG:?}"
repository_name="${REPOSITORY_URL#*/}"

if aws ecr describe-images --repository-name "$repository_name" \
    --image-ids "imageTag=$IMAGE_TAG" >/dev/null 2>&1; then
  echo "$repository_name:$IMAGE_TAG is already in ECR; nothing to push"
  exit 0
fi

docker load --input "$ARCHIVE"
docker tag "$LOCAL_IMAGE" "$REPOSITORY_URL:$IMAGE_TAG"
docker push "$REPOSITORY_URL:$IMAGE_TAG"
