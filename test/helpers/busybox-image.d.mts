// Types for busybox-image.mjs (plain JavaScript, so that bench/*.mjs can import it too).
export declare const TEST_IMAGE: string;
/** Builds `image` with the docker CLI unless it exists already; resolves to its name. */
export declare function ensureBusyboxImage(image?: string): Promise<string>;
