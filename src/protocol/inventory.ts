// What an agent tells the hub about the cluster it runs on. Sent in every
// hello and, when it changes, as an `inventory` report, so the hub's view
// is never older than the last connection.
import { z } from 'zod';

export const inventoryComponent = z.object({
  name: z.string().min(1).max(253),
  version: z.string().min(1).max(128),
});
export type InventoryComponent = z.infer<typeof inventoryComponent>;

/** A hotfix override the cluster runs on top of its release. */
export const inventoryOverride = z.object({
  name: z.string().min(1).max(253),
  component: z.string().min(1).max(253).optional(),
  version: z.string().min(1).max(128).optional(),
});
export type InventoryOverride = z.infer<typeof inventoryOverride>;

export const inventory = z.object({
  components: z.array(inventoryComponent).max(1000),
  /** Empty when the agent could not read it yet; the hub shows it as unknown. */
  kubernetesVersion: z.string().max(64),
  /** Detected from the nodes (provider IDs, labels), e.g. "aws", "vsphere", "bare-metal". */
  targetInfrastructure: z.string().max(128),
  overrides: z.array(inventoryOverride).max(1000).default([]),
});
export type Inventory = z.infer<typeof inventory>;
export type InventoryInput = z.input<typeof inventory>;
