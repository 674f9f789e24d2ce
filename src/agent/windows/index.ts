// Maintenance-window arithmetic: pure functions of a policy and an instant.
export { compileHubWindows, compilePolicy, type CompiledPolicy, type CompiledWindowSet } from './sources.ts';
export { allowedIntervals, fitsInWindow, formatMs, maintenanceWindowReport, nextOpening, windowState, type MaintenanceWindowReport, type FitDecision, type WindowOptions, type WindowReason, type WindowState } from './window-state.ts';
export { estimateStageMs, type EstimateOptions } from './estimate.ts';
export { intersect, subtract, union, type Interval } from './intervals.ts';
export { CronSchedule } from './cron-schedule.ts';
export { Zone } from '../../lib/zone.ts';
