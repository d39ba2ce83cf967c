/**
 * A stop-gradient for tfjs 4.22, which has no `tf.stopGradient`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/**
 * Returns `x` as a constant for differentiation: the value is unchanged, the gradient through
 * it is zero. Ops inside `tf.customGrad`'s forward are not taped, so `fn`'s inner ops (which
 * may lack gradients, like TopK) never reach backpropagation either.
 */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  return withoutGradient((input) => input.clone(), x);
}

/**
 * Computes `fn(x)` as a constant for differentiation (zero gradient with respect to `x`, and
 * `fn`'s ops are not recorded on the gradient tape).
 */
export function withoutGradient<I extends tf.Tensor, O extends tf.Tensor>(
  fn: (input: I) => O,
  x: I,
): O {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as I;
    return { value: fn(input), gradFunc: () => tf.zerosLike(input) };
  });
  return op(x) as O;
}
