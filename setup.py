"""The one thing pyproject.toml cannot say: the sample DAGs (``dags/``) ship inside the package.

They go into the wheel as ``airflow_revcent/sample_dags/`` (``python -m airflow_revcent.samples DEST``
copies them into a DAGs folder) while staying in ``dags/`` in the repository, where the demo, the tests
and the compose file use them. pyproject.toml's package discovery cannot add a package from another
folder, so the packages are found here: every ``airflow_revcent`` package, plus that one.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["airflow_revcent", "airflow_revcent.*"]), "airflow_revcent.sample_dags"],
    package_dir={"airflow_revcent.sample_dags": "dags"},
)
