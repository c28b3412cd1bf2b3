"""The production datacenter as Pulumi stacks (vSphere primary, AWS or vSphere DR), checked with
mocks and a policy pack; the real preview runs in the institution's CI against vCenter."""
