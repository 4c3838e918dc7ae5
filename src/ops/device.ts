/**
 * The one `GPUDevice` of the process, acquired once with limits raised to what the adapter allows.
 *
 * @module
 */
import { GPUFailureError, NoAdapterError } from "./errors.ts";

/** What the library knows about the adapter it runs on. */
export interface DeviceInfo {
  /** The device. */
  device: GPUDevice;
  /** Adapter description, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`. */
  description: string;
  /** True on software (fallback) adapters such as llvmpipe / lavapipe / SwiftShader. */
  software: boolean;
  /** True when the device was created with `shader-f16`. */
  f16: boolean;
  /** True when the device has timestamp queries. */
  timestamps: boolean;
  /** The device limits. */
  limits: GPUSupportedLimits;
}

let info: DeviceInfo | null = null;
let pending: Promise<DeviceInfo> | null = null;
let deviceError: string | null = null;

const RAISED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxStorageBuffersPerShaderStage",
  "maxStorageTexturesPerShaderStage",
  "maxComputeWorkgroupsPerDimension",
  "maxTextureDimension2D",
] as const;

function isSoftware(adapter: GPUAdapter): boolean {
  const d = `${adapter.info.description} ${adapter.info.device} ${adapter.info.vendor}`;
  return (adapter.info as { isFallbackAdapter?: boolean }).isFallbackAdapter === true ||
    /llvmpipe|lavapipe|swiftshader|software/i.test(d);
}

async function acquire(): Promise<DeviceInfo> {
  const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  if (!gpu) {
    throw new NoAdapterError(
      "WebGPU is not available in this runtime; run with Deno 2 (`deno run -A`) or a browser with WebGPU",
    );
  }
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new NoAdapterError(
      "No WebGPU adapter was found; install a GPU driver (Vulkan, Metal or D3D12), or on Linux " +
        "without a GPU install Mesa's software drivers (`apt-get install mesa-vulkan-drivers`)",
    );
  }
  const requiredLimits: Record<string, number> = {};
  for (const k of RAISED_LIMITS) requiredLimits[k] = adapter.limits[k];
  const features: GPUFeatureName[] = [];
  if (adapter.features.has("shader-f16")) features.push("shader-f16");
  if (adapter.features.has("timestamp-query")) features.push("timestamp-query");
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures: features });
  device.addEventListener("uncapturederror", (e) => {
    deviceError ??= (e as GPUUncapturedErrorEvent).error.message;
  });
  const software = isSoftware(adapter);
  if (software) {
    console.warn(
      `denoise: running on a software WebGPU adapter (${adapter.info.description}); ` +
        "expect it to be slow, a GPU driver makes it fast",
    );
  }
  return {
    device,
    description: adapter.info.description || adapter.info.vendor,
    software,
    f16: features.includes("shader-f16"),
    timestamps: features.includes("timestamp-query"),
    limits: device.limits,
  };
}

/**
 * Returns the process-wide device, creating it on first call.
 *
 * @example
 * ```ts
 * import { getDevice } from "./device.ts";
 * const { description, software } = await getDevice();
 * console.log(description, software);
 * ```
 */
export function getDevice(): Promise<DeviceInfo> {
  if (info) return Promise.resolve(info);
  pending ??= acquire().then((d) => {
    // Release the device before the runtime tears down: Mesa's lavapipe has been seen to
    // abort with "double free or corruption" when a live device is torn down at exit.
    globalThis.addEventListener?.("unload", () => d.device.destroy());
    return info = d;
  });
  return pending;
}

/** The device once `getDevice()` has resolved; throws before that. */
export function deviceInfo(): DeviceInfo {
  if (!info) {
    throw new NoAdapterError(
      "The GPU device is not ready; await getDevice() once before creating tensors",
    );
  }
  return info;
}

/** Throws the first uncaptured GPU error seen since the last call, if any. */
export function throwDeviceError(): void {
  if (deviceError !== null) {
    const m = deviceError;
    deviceError = null;
    throw new GPUFailureError(`The GPU reported an error: ${m}`);
  }
}
