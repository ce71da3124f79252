"""The extras, which need this checkout's absolute path (everything else is in pyproject.toml).

``[lab]`` and ``[test]`` install the JupyterLab extension from ``lab/`` in this checkout
(``mistral-magic-lab``, with its front end already built, so no Node.js is needed): a
requirement can name a local folder only by an absolute ``file://`` URL. It is never
looked up on a package index.
"""

from pathlib import Path

from setuptools import setup

LAB = f"mistral-magic-lab @ {(Path(__file__).resolve().parent / 'lab').as_uri()}"

setup(
    extras_require={
        # matplotlib: the tools notebook draws its histograms with it.
        "lab": ["jupyterlab>=4.2", "matplotlib>=3.7", LAB],
        "test": [
            "jupyterlab>=4.2",
            LAB,
            "pytest>=8",
            "pytest-timeout>=2.3",
            "nbclient>=0.10",
            "ipykernel>=6.29",
            "playwright>=1.45",
            "hypothesis>=6.100",
            "ruff>=0.5",
            "import-linter>=2.1",
            "pyyaml>=6",
            "fpdf2>=2.7",
            "matplotlib>=3.7",
            # Clients no one here wrote, run against the offline server
            # (tests/test_offline_clients.py); none pulls a deep-learning framework.
            "pydantic-ai-slim[mistral]>=2.70",
            "instructor>=1.17",
            "langchain-mistralai>=1.1",
            "openai>=1.50",
            # Terminal IPython in a pseudo-terminal, and the screen it leaves
            # (tests/test_terminal.py).
            "pexpect>=4.8",
            "pyte>=0.8",
        ],
    },
)
