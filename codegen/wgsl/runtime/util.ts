// Small integer helpers of the runtime.
export function prod(a: number[]): number {
  return a.reduce((x, y) => x * y, 1);
}
export function cdiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}
export function nextPow2(x: number): number {
  let p = 1;
  while (p < x) p *= 2;
  return p;
}

export function align4(n: number): number {
  return Math.max(4, Math.ceil(n / 4) * 4);
}
