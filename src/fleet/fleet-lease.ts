import { callBroker, openPinned } from '../common/broker-client.js';
import { BrokerUnavailableError } from '../common/errors.js';
import type { LeaseFile } from '../common/lease-file.js';

// The fleet's side of the broker's admin API: one lease shared by the job's tasks, their uploaded
// artifacts, and the clean-up.
export interface BrokerAdmin {
  url: string;
  ca: string;
  adminToken: string;
}

export interface FleetLease {
  id: string;
  file: LeaseFile;
}

type LeaseAnswer = { id?: string; lease?: string; runId?: string; expiresAt?: string; message?: string };

export async function issueFleetLease(
  broker: BrokerAdmin,
  runId: string,
  holders: number,
  ttlMs: number,
): Promise<FleetLease> {
  const answer = await callBroker(`${broker.url}/v1/leases`, {
    method: 'POST',
    ca: broker.ca,
    token: broker.adminToken,
    body: { runId, ttlSeconds: Math.ceil(ttlMs / 1000), holders, uploads: true },
  });
  const body = answer.body as LeaseAnswer;
  if (answer.status !== 201 || !body.id || !body.lease || !body.expiresAt)
    throw new BrokerUnavailableError(`the broker refused the fleet's lease (HTTP ${answer.status})`, {
      hint: body.message ?? 'Check --broker-url and that --broker-dir is that broker’s own.',
    });
  return {
    id: body.id,
    file: {
      codexbox: 'lease',
      url: `${broker.url}/oauth/token`,
      lease: body.lease,
      ca: broker.ca,
      runId,
      expiresAt: body.expiresAt,
    },
  };
}

export async function listUploads(broker: BrokerAdmin, leaseId: string): Promise<Map<string, number>> {
  const answer = await callBroker(`${broker.url}/v1/leases/${leaseId}/artifacts`, {
    method: 'GET',
    ca: broker.ca,
    token: broker.adminToken,
  });
  const entries = Array.isArray(answer.body) ? (answer.body as { task: string; bytes: number }[]) : [];
  return new Map(entries.map((entry) => [entry.task, entry.bytes]));
}

export function openUpload(broker: BrokerAdmin, leaseId: string, task: string) {
  return openPinned(`${broker.url}/v1/leases/${leaseId}/artifacts/${encodeURIComponent(task)}`, {
    method: 'GET',
    ca: broker.ca,
    headers: { authorization: `Bearer ${broker.adminToken}` },
    timeoutMs: 60_000,
  });
}

// Revoking a lease removes its uploads too, and any upload still arriving is refused.
export async function endFleetLease(broker: BrokerAdmin, leaseId: string): Promise<void> {
  await callBroker(`${broker.url}/v1/leases/${leaseId}`, {
    method: 'DELETE',
    ca: broker.ca,
    token: broker.adminToken,
  });
}
