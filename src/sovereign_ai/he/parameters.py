"""CKKS parameter sets: 128-bit secure, deep enough for the model, precise enough for its answer.

A CKKS parameter set is a ring size N (the polynomial modulus degree; N/2 numbers fit in one
ciphertext) and a chain of coefficient-modulus primes: a first prime that holds a value's integer
part and the final precision, one prime per multiplication (each the size of the scale, 2^s,
dropped by one rescale after each multiplication), and a special prime for key switching. The
chain's total size decides the security: at most 109 / 218 / 438 / 881 bits for N = 4096 / 8192 /
16384 / 32768 keeps 128-bit security (the HomomorphicEncryption.org standard's table for
ternary secrets, the bounds Microsoft SEAL enforces).

:func:`parameters_for` picks the smallest secure set for a depth and a precision;
:meth:`CkksParameters.check` refuses a set that is insecure, too shallow or too imprecise, with
the reason. A scale of 2^s leaves about s - 20 bits of precision after a few operations (the
noise of encoding and rescaling at these ring sizes is about 2^20 times the unit), so the common
tutorial setting, N = 4096 with a 2^20 scale, leaves nothing: its dot products come back wrong
by about 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sovereign_ai.errors import ConfigError

__all__ = ["CkksParameters", "parameters_for"]

MAX_BITS_128 = {4096: 109, 8192: 218, 16384: 438, 32768: 881}
"""Largest coefficient modulus (bits) per ring size at 128-bit security."""
_NOISE_BITS = 20  # bits of a scaled value the noise of encoding and rescaling takes
_MAX_PRIME_BITS = 60  # SEAL's primes are at most 60 bits


@dataclass(frozen=True)
class CkksParameters:
    """One CKKS parameter set.

    Parameters
    ----------
    poly_modulus_degree
        The ring size N: 4096, 8192, 16384 or 32768. A ciphertext holds N/2 numbers.
    coeff_mod_bit_sizes
        Bit sizes of the coefficient-modulus primes: first, one per multiplication, special.
    scale_bits
        The scale is 2^scale_bits; the middle primes must be that size.
    """

    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    scale_bits: int

    @property
    def slots(self) -> int:
        """How many numbers one ciphertext holds (N/2)."""
        return self.poly_modulus_degree // 2

    @property
    def depth(self) -> int:
        """How many multiplications (each followed by a rescale) a ciphertext can take."""
        return len(self.coeff_mod_bit_sizes) - 2

    @property
    def total_bits(self) -> int:
        """The coefficient modulus's size in bits (what the security bound limits)."""
        return sum(self.coeff_mod_bit_sizes)

    @property
    def precision_bits(self) -> int:
        """About how many fractional bits survive (scale bits less the noise's)."""
        return self.scale_bits - _NOISE_BITS

    @property
    def integer_bits(self) -> int:
        """About how large (in bits) a value may grow before it wraps around the first prime."""
        return self.coeff_mod_bit_sizes[0] - self.scale_bits

    def check(self, *, depth: int = 0, precision_bits: int = 10, integer_bits: int = 8) -> None:
        """Return if these parameters are secure and fit a computation; raise otherwise.

        Parameters
        ----------
        depth
            Multiplications the computation needs.
        precision_bits
            Fractional bits the answer needs (10: about 1e-3).
        integer_bits
            Bits of the largest value the computation produces (8: values below 256).

        Raises
        ------
        ConfigError
            Naming what is wrong: an unsupported ring size, a modulus too large for 128-bit
            security, too few multiplications, a scale too small for the precision, or primes
            the scale does not fit.
        """
        n, bits = self.poly_modulus_degree, self.coeff_mod_bit_sizes
        if n not in MAX_BITS_128:
            raise ConfigError(f"The CKKS ring size must be one of {sorted(MAX_BITS_128)}; got {n}.")
        if len(bits) < 2 or any(not 20 <= b <= _MAX_PRIME_BITS for b in bits):
            raise ConfigError(
                f"The coefficient modulus needs at least two primes of 20 to 60 bits; got {bits}."
            )
        if self.total_bits > MAX_BITS_128[n]:
            raise ConfigError(
                f"Insecure CKKS parameters: a {self.total_bits}-bit coefficient modulus with ring "
                f"size {n} is below 128-bit security (at most {MAX_BITS_128[n]} bits). Use a "
                "larger ring or fewer, smaller primes (sovereign_ai.he.parameters_for picks one)."
            )
        if any(b != self.scale_bits for b in bits[1:-1]):
            raise ConfigError(
                f"Each middle prime must be the scale's size ({self.scale_bits} bits) so that "
                f"rescaling keeps the scale; got {bits}."
            )
        if self.depth < depth:
            raise ConfigError(
                f"These CKKS parameters allow {self.depth} multiplication(s); the model needs "
                f"{depth}. Add primes (and, if the bound is reached, a larger ring)."
            )
        if self.precision_bits < precision_bits:
            raise ConfigError(
                f"A 2^{self.scale_bits} scale leaves about {self.precision_bits} bits of precision "
                f"after the noise; {precision_bits} are needed. Raise the scale to at least "
                f"2^{precision_bits + _NOISE_BITS} (a 2^20 scale gives errors near 1)."
            )
        if self.integer_bits < integer_bits or bits[-1] < bits[0]:
            raise ConfigError(
                f"The first prime ({bits[0]} bits) leaves {self.integer_bits} bits for values "
                f"above the scale; {integer_bits} are needed, and the special prime must be at "
                "least as large as the first."
            )

    def context(self, *, galois_keys: bool = False) -> Any:
        """A new TenSEAL context with a fresh secret key (the client's); relinearisation keys
        always, Galois (rotation) keys only if asked for."""
        import tenseal as ts

        self.check()
        context = ts.context(
            ts.SCHEME_TYPE.CKKS,
            poly_modulus_degree=self.poly_modulus_degree,
            coeff_mod_bit_sizes=list(self.coeff_mod_bit_sizes),
        )
        context.global_scale = float(2**self.scale_bits)
        if galois_keys:
            context.generate_galois_keys()
        return context


def parameters_for(
    depth: int, *, precision_bits: int = 15, integer_bits: int = 15
) -> CkksParameters:
    """The smallest 128-bit secure parameter set for ``depth`` multiplications.

    Parameters
    ----------
    depth
        Multiplications the computation needs (a linear model: 1; the square MLP: 3).
    precision_bits, integer_bits
        As :meth:`CkksParameters.check`.

    Raises
    ------
    ConfigError
        If no supported ring fits (the depth or precision is too large).
    """
    scale = precision_bits + _NOISE_BITS
    first = scale + integer_bits
    if scale > _MAX_PRIME_BITS or first > _MAX_PRIME_BITS or depth < 0:
        raise ConfigError(
            f"No CKKS primes fit {precision_bits} bits of precision and {integer_bits} integer "
            f"bits (a prime holds at most {_MAX_PRIME_BITS} bits)."
        )
    bits = (first, *([scale] * depth), first)
    for degree, bound in sorted(MAX_BITS_128.items()):
        if sum(bits) <= bound:
            parameters = CkksParameters(degree, bits, scale)
            parameters.check(depth=depth, precision_bits=precision_bits, integer_bits=integer_bits)
            return parameters
    raise ConfigError(
        f"Depth {depth} at {precision_bits} bits of precision needs {sum(bits)} modulus bits, "
        f"more than the largest ring allows at 128-bit security ({MAX_BITS_128[32768]})."
    )
