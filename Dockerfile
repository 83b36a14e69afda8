# A CUDA 13.0 *devel* image, so the custom ops can JIT-compile inside the container. torch itself is then
# pinned to the release the suite is tested with (TORCH_VERSION / TORCHVISION_VERSION build arguments).
ARG BASE_IMAGE=pytorch/pytorch:2.9.1-cuda13.0-cudnn9-devel
FROM ${BASE_IMAGE}
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CUDA_HOME=/usr/local/cuda

# ffmpeg for videos; build tools for the JIT-compiled ops; Xvfb, Mesa's software OpenGL and the X11
# libraries GLFW loads, for visualizer.py without a screen (xvfb-run python visualizer.py ...).
# Versions follow the base image's distribution, which is pinned by BASE_IMAGE.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg build-essential \
        xvfb xauth libgl1 libglx-mesa0 libgl1-mesa-dri libxrandr2 libxinerama1 libxcursor1 libxi6 \
    && rm -rf /var/lib/apt/lists/*

COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" -r /tmp/requirements.txt \
    && python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '${TORCH_VERSION}')"

# Run as any user (docker run --user $(id -u):$(id -g) -e HOME=/scratch): the caches follow
# $HOME unless TORCH_EXTENSIONS_DIR / DNNLIB_CACHE_DIR are set, and /scratch is writable.
WORKDIR /scratch
