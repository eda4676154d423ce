# syntax=docker/dockerfile:1
# Forge Course images. Two targets:
#
#   lab    the course and its test suite on TensorFlow's official GPU image, whose tag is
#          the pinned TensorFlow (pyproject.toml: tensorflow>=2.21,<2.22 -> 2.21.0-gpu; a
#          test keeps them in step). Default command: JupyterLab on port 8888.
#            docker build --target lab -t forge-course:lab .
#            docker run --gpus all -p 8888:8888 forge-course:lab
#            docker run --gpus all forge-course:lab make test
#   serve  a slim image that serves a model over TF Serving's REST API on port 8501,
#          with a HEALTHCHECK on /healthz. CPU TensorFlow by default; for a GPU build
#          add --build-arg TF_PACKAGE='tensorflow[and-cuda]'.
#            docker build --target serve -t forge-course:serve .
#            docker run -p 8501:8501 -v "$PWD/models:/models:ro" forge-course:serve
#
# Both run as the unprivileged user "forge" (uid 1000).

FROM tensorflow/tensorflow:2.21.0-gpu AS lab
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg
# make runs the two commands; graphviz draws model graphs; bubblewrap puts each graded
# kernel in a sandbox of its own (forge-course grade refuses without it unless told
# --no-sandbox). Ubuntu's own versions (no pin).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends make graphviz bubblewrap \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 --shell /bin/bash forge
USER 1000:1000
ENV HOME=/home/forge
WORKDIR /home/forge/course
COPY --chown=forge:forge . .
# The venv sees the image's TensorFlow (built for its CUDA): pip keeps it, adds the rest.
# virtualenv, because the image's Python may lack ensurepip. The stamp tells make the
# install is done, so `make test` does not reinstall.
RUN python3 -m pip install --user "virtualenv>=20,<21" \
    && python3 -m virtualenv --system-site-packages .venv \
    && .venv/bin/python -m pip install -e '.[dev]' \
    && touch .venv/.forge-course-installed
ENV PATH=/home/forge/course/.venv/bin:$PATH
EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", \
     "--ServerApp.root_dir=/home/forge/course", "notebooks/00_setup_and_environment.ipynb"]


FROM python:3.11-slim-bookworm AS serve
ARG TF_PACKAGE=tensorflow-cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin forge
WORKDIR /home/forge/app
COPY --chown=forge:forge pyproject.toml README.md ./
COPY --chown=forge:forge forge_course ./forge_course
# Only what serving imports, at the versions pyproject.toml pins (a test checks them).
RUN pip install --no-deps . \
    && pip install "${TF_PACKAGE}==2.21.0" "keras>=3.13.2,<4" "numpy>=1.26,<3" \
       "httptools>=0.6,<1"
USER 1000:1000
ENV HOME=/home/forge
EXPOSE 8501
HEALTHCHECK --interval=15s --timeout=3s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/healthz', timeout=2)"]
ENTRYPOINT ["python", "-m", "forge_course.serving"]
CMD ["/models/digits/1", "--name", "digits", "--host", "0.0.0.0", "--port", "8501"]
