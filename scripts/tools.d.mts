export declare const testTools: Record<string, string>;
export declare const demoTools: Record<string, string>;
export declare const benchTools: Record<string, string>;
export declare function ensureTools(tools: Record<string, string>): void;
