# The RevCent sandbox (standard library only).
FROM python:3.11-slim

WORKDIR /opt/revcent
COPY revcent_sandbox /opt/revcent/revcent_sandbox
EXPOSE 8089
ENTRYPOINT ["python", "-m", "revcent_sandbox", "--host", "0.0.0.0", "--port", "8089"]
