"""Airflow hooks: :class:`~airflow_revcent.hooks.revcent.RevCentHook`, the RevCent connection."""
