"""The Ansible adapter: playbooks through ansible-runner, and the strategy."""
